//! `deploy.toml` parsing on arbitrary text: a checked config or an error naming a field.
#![no_main]

use cipherdm_transport_tcp::DeployConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = DeployConfig::parse(text, std::path::Path::new("/etc/deploy.toml")) {
            assert_eq!(c.parties.len(), 3);
            for (i, p) in c.parties.iter().enumerate() {
                assert_eq!(p.id, i);
            }
        }
    }
});
