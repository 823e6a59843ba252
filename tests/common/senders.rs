//! Shared set-up of the sender tests: a registered key, the mock, and a client of it.

use std::time::Duration;

use bars_receiver::sender::BarsClient;
use bars_receiver::{TargetIdentifier, config::SenderSettings};
use uuid::Uuid;

use super::apim::{KeyFiles, MockApim, keygen, sender_toml};

pub const API_KEY: &str = "test-app-key";
pub const KID: &str = "TestSupplier-INT-1";

pub struct Setup {
    pub mock: MockApim,
    pub key: KeyFiles,
    _dir: tempfile::TempDir,
}

pub async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), KID);
    let mock = MockApim::start(API_KEY, KID, &key.public_key_pem).await;
    Setup { mock, key, _dir: dir }
}

pub fn client(s: &Setup, extra: &str) -> BarsClient {
    let settings = SenderSettings::from_toml(&sender_toml(&s.mock, &s.key, extra), "test", Vec::new())
        .expect("sender settings");
    BarsClient::new(&settings).expect("client")
}

pub fn target() -> TargetIdentifier {
    TargetIdentifier::parse_token("https://fhir.nhs.uk/Id/dos-service-id|2000072489").unwrap()
}

pub fn message() -> serde_json::Value {
    serde_json::json!({"resourceType": "Bundle", "id": Uuid::new_v4().to_string(), "type": "message"})
}

/// Bounds every test: nothing here should come near it.
pub async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("test timed out")
}
