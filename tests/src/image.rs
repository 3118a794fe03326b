//! The edge's container image as `cargo xtask test` exports it (`EINDR_EDGE_IMAGE`: a folder
//! with `rootfs/` and podman's `image.json`): its entrypoint run from the exported filesystem
//! with `chroot`, as the image's user and with the image's environment, since `podman run`
//! itself is refused in this sandbox.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

pub struct EdgeImage {
    pub rootfs: PathBuf,
    /// podman's `image inspect` of it.
    pub inspect: Value,
}

impl EdgeImage {
    pub fn exported() -> Self {
        let folder = PathBuf::from(std::env::var_os("EINDR_EDGE_IMAGE").expect(
            "EINDR_EDGE_IMAGE is not set: `cargo xtask test` builds the image with podman",
        ));
        let text = std::fs::read_to_string(folder.join("image.json")).unwrap();
        let inspect = serde_json::from_str::<Value>(&text).unwrap()[0].clone();
        Self {
            rootfs: folder.join("rootfs"),
            inspect,
        }
    }

    /// The image's environment, `NAME=value` entries.
    pub fn env(&self) -> Vec<(String, String)> {
        self.inspect["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn strings(value: &Value) -> Vec<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    pub fn entrypoint(&self) -> Vec<String> {
        Self::strings(&self.inspect["Config"]["Entrypoint"])
    }

    pub fn user(&self) -> String {
        self.inspect["Config"]["User"].as_str().unwrap().to_owned()
    }

    /// The healthcheck's command (`CMD` form: no shell in the image).
    pub fn healthcheck(&self) -> Vec<String> {
        let test = Self::strings(&self.inspect["Healthcheck"]["Test"]);
        assert_eq!(test.first().map(String::as_str), Some("CMD"), "{test:?}");
        test[1..].to_vec()
    }

    /// `argv` run inside the image's filesystem as its user, with only the image's
    /// environment and then `vars`.
    pub fn command(&self, argv: &[String], vars: &[(String, String)]) -> Command {
        let mut cmd = Command::new("chroot");
        cmd.arg(format!("--userspec={}", self.user()))
            .arg(&self.rootfs)
            .args(argv)
            .env_clear()
            .envs(self.env())
            .envs(vars.iter().map(|(k, v)| (k, v)));
        cmd
    }
}
