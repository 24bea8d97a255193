//! A throwaway single-node Garage, the S3 server the object-store tests run
//! against: started once per test binary on free 127.0.0.1 ports (replication
//! factor 1, SQLite metadata, a one-node layout and one key), stopped when the
//! binary exits. Each test gets a bucket of its own.
//!
//! The binary comes from FERRY_TEST_GARAGE (`nox -s tests` builds Garage into
//! target/tools and sets it), else target/tools/garage-2.5.0/bin/garage. Without
//! one the Garage tests are skipped with a message, or fail under
//! FERRY_TEST_REQUIRE_ALL=1 (CI).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use ferry::config::{BlobStoreKind, Redacted, Secret, Settings};
use tempfile::TempDir;

use crate::helpers::free_port;

pub struct Garage {
    bin: PathBuf,
    config: PathBuf,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    _dir: TempDir,
}

static GARAGE: OnceLock<Option<Garage>> = OnceLock::new();

fn garage_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FERRY_TEST_GARAGE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "FERRY_TEST_GARAGE={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/garage-2.5.0/bin/garage");
    built.is_file().then_some(built)
}

/// The shared Garage, or None (with a message) when there is no binary and the
/// run does not require every test.
pub fn garage() -> Option<&'static Garage> {
    GARAGE
        .get_or_init(|| match garage_bin() {
            Some(bin) => Some(Garage::start(bin)),
            None => {
                assert!(
                    std::env::var_os("FERRY_TEST_REQUIRE_ALL").is_none(),
                    "no Garage binary: set FERRY_TEST_GARAGE, or run `nox -s tests`, which builds it"
                );
                eprintln!(
                    "no Garage binary (FERRY_TEST_GARAGE unset, target/tools has none): skipping an object-store test"
                );
                None
            }
        })
        .as_ref()
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes * 2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(bytes * 2);
    out
}

impl Garage {
    fn start(bin: PathBuf) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ferry-garage-")
            .tempdir()
            .expect("temp dir for Garage");
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        let root = dir.path().display();
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                secret = random_hex(32)
            ),
        )
        .expect("write garage.toml");
        let mut server = Command::new(&bin);
        server
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("server.log")).expect("log file"),
            ));
        // Killed when the spawning thread (which lives as long as the test binary) ends.
        unsafe {
            server.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let child = server.spawn();
            let ok = child.is_ok();
            let _ = tx.send(child.map(|_| ()).map_err(|e| e.to_string()));
            if ok {
                loop {
                    std::thread::park();
                }
            }
        });
        rx.recv().expect("garage thread").expect("start garage");
        let mut garage = Self {
            bin,
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id: format!("GK{}", random_hex(12)),
            secret: random_hex(32),
            _dir: dir,
        };
        let node = garage.wait_for_node();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        let (key_id, secret) = (garage.key_id.clone(), garage.secret.clone());
        garage.cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "ferry-test",
            &key_id,
            &secret,
        ]);
        garage.wait_for_s3(s3);
        garage.key_id = key_id;
        garage
    }

    /// The node's id once its RPC port answers: `node id` reads the key from the
    /// metadata directory before the server listens, so `status`, which asks the
    /// server, is what says it is up (layout commands fail before then).
    fn wait_for_node(&self) -> String {
        for _ in 0..600 {
            let up = self
                .command(&["status"])
                .output()
                .expect("garage status")
                .status
                .success();
            if up {
                let id = self.cli(&["node", "id", "-q"]);
                return id.trim().split('@').next().unwrap_or_default().to_string();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Garage did not start (see its server.log)");
    }

    fn wait_for_s3(&self, port: u16) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Garage's S3 API did not listen on {port}");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c").arg(&self.config).args(args);
        cmd
    }

    /// Run a `garage` admin command; it must succeed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run garage");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new bucket the test key may read and write.
    pub fn bucket(&self) -> String {
        let name = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        self.cli(&["bucket", "create", &name]);
        self.allow(&name, &["--read", "--write", "--owner"]);
        name
    }

    pub fn allow(&self, bucket: &str, rights: &[&str]) {
        let mut args = vec!["bucket", "allow"];
        args.extend_from_slice(rights);
        args.extend_from_slice(&[bucket, "--key", "ferry-test"]);
        self.cli(&args);
    }

    pub fn deny(&self, bucket: &str, rights: &[&str]) {
        let mut args = vec!["bucket", "deny"];
        args.extend_from_slice(rights);
        args.extend_from_slice(&[bucket, "--key", "ferry-test"]);
        self.cli(&args);
    }

    /// Point `settings` at `bucket` of this Garage.
    pub fn configure(&self, settings: &mut Settings, bucket: &str) {
        self.configure_at(settings, bucket, &self.endpoint);
    }

    /// The same, through another endpoint (a proxy in front of this Garage).
    pub fn configure_at(&self, settings: &mut Settings, bucket: &str, endpoint: &str) {
        settings.blob_store = BlobStoreKind::S3;
        settings.s3_endpoint = Some(url::Url::parse(endpoint).expect("endpoint"));
        settings.s3_bucket = Some(bucket.to_string());
        settings.s3_prefix = "ferry".into();
        settings.s3_access_key_id = Some(self.key_id.clone());
        settings.s3_secret_access_key = Some(Redacted(Secret::new(self.secret.clone())));
    }
}

/// Generate a test per store from `async fn NAME(backend: Backend, blobs: BlobStore)`:
/// the local directory on SQLite and PostgreSQL, and Garage on SQLite.
#[macro_export]
macro_rules! every_store {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::helpers::{Backend, BlobStore};
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Backend::Sqlite, BlobStore::Local).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::helpers::skip_postgres() {
                        return;
                    }
                    super::$name(Backend::Postgres, BlobStore::Local).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_garage() {
                    if $crate::garage::garage().is_none() {
                        return;
                    }
                    super::$name(Backend::Sqlite, BlobStore::Garage).await
                }
            }
        )*
    };
}
