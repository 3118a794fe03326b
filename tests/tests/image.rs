//! The edge's container image (`deploy/edge.Dockerfile`), built with podman and exported by
//! `cargo xtask test`: its filesystem holds the one static binary and nothing else, it runs as
//! an unprivileged user in minimal mode by default, its entrypoint serves the whole suite from
//! the exported filesystem, and its healthcheck passes against it.

use e2e::Runtime;
use e2e::image::EdgeImage;
use e2e::local::{Launcher, LocalRuntime};
use e2e::suite;

#[test]
#[ignore = "needs podman: `cargo xtask test` builds the image and runs this when podman is installed"]
fn the_edge_image_is_self_contained_and_serves_the_suite() {
    let image = EdgeImage::exported();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&image.rootfs).unwrap() {
        files.push(entry.unwrap().file_name().into_string().unwrap());
    }
    assert_eq!(
        files,
        ["eindr-edge"],
        "the image holds more than the binary"
    );
    assert_eq!(image.user(), "65534:65534");
    let env = image.env();
    for default in [("MINIMAL_MODE", "true"), ("STORE_URL", "memory")] {
        assert!(
            env.iter().any(|(k, v)| (k.as_str(), v.as_str()) == default),
            "{default:?} not in {env:?}"
        );
    }
    let size = image.inspect["Size"].as_u64().unwrap();
    eprintln!("image: {size} bytes");
    assert!(
        size <= 20_000_000,
        "the image is {size} bytes, over its 20 MB target"
    );

    suite::run_main(Launcher::Image);

    let edge = LocalRuntime::start(Launcher::Image, "image-healthcheck", &[]);
    let addr = edge.base_url().trim_start_matches("http://").to_owned();
    let status = image
        .command(&image.healthcheck(), &[("EDGE_ADDR".into(), addr)])
        .status()
        .unwrap();
    assert!(status.success(), "the image's healthcheck failed: {status}");
}
