//! Sets up the link for the build mode (host, kernel standalone or kernel WDK): see `common-build`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common_build::configure()
}
