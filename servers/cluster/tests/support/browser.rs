//! A real browser for the tests: headless Chromium driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`), with fantoccini as the client.
//!
//! [`Chromedriver`] starts the driver on a free port in a process group of its own and kills
//! the group (the driver and every browser it started) on drop, also when a test panics.

use super::{free_port, not_installed};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The browser, as Debian installs it.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process (and the browsers it starts), killed on drop.
pub struct Chromedriver {
    /// The driver, leader of its process group.
    child: Child,
    /// Where it listens (WebDriver over HTTP).
    pub url: String,
    /// The browsers' profiles, removed on drop.
    profiles: PathBuf,
}

impl Chromedriver {
    /// Starts chromedriver on a free port; `None` when Chromium or its driver is not installed
    /// (outside CI; in CI, which installs them, their absence fails the test).
    pub fn start() -> Option<Chromedriver> {
        let installed = Path::new(CHROMIUM).exists()
            && Command::new("chromedriver")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !installed {
            return not_installed("chromium or chromedriver");
        }
        let port = free_port();
        let profiles =
            std::env::temp_dir().join(format!("c10k-browser-{}-{port}", std::process::id()));
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: on drop, one signal reaches it and its browsers.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }

    /// A new headless browser window of `width` × `height` pixels; `phone`: Chromium's mobile
    /// emulation (a viewport of exactly that size, a touch screen, a phone's user agent).
    pub async fn browser(&self, name: &str, width: u32, height: u32, phone: bool) -> Browser {
        let profile = self.profiles.join(name);
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox", // CI runs as root, where Chromium's sandbox cannot start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--force-device-scale-factor=1",
                "--lang=en-US",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2, "touch": true},
            });
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("{name}: a browser session: {e}"));
        Browser {
            client,
            name: name.to_string(),
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: signals the process group we created for the driver.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profiles);
    }
}

/// One browser window.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// For assertion messages.
    pub name: String,
}

impl Browser {
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: open {url}: {e}", self.name));
    }

    /// Types into the element with this id, as a person would.
    pub async fn type_into(&self, id: &str, text: &str) {
        let element = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("{}: #{id}: {e}", self.name));
        element.clear().await.expect("clear");
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("{}: type into #{id}: {e}", self.name));
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: {css}: {e}", self.name))
            .click()
            .await
            .unwrap_or_else(|e| panic!("{}: click {css}: {e}", self.name));
    }

    /// Runs `script` (a function body: `return ...`) in the page.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}: {script}: {e}", self.name))
    }

    /// Waits until `script` returns `true`, for at most `within`.
    pub async fn wait_until(&self, what: &str, script: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.eval(script, vec![]).await == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let log = self.log().await;
                panic!(
                    "{}: not within {within:?}: {what}\nlog: {log:#?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The chat messages shown, as `from: text`, in order.
    pub async fn messages(&self) -> Vec<String> {
        let script = r#"return [...document.querySelectorAll('#log li.msg')].map(
            (li) => li.querySelector('.from').textContent + ': ' +
                    li.querySelector('.text').textContent)"#;
        let value = self.eval(script, vec![]).await;
        serde_json::from_value(value).unwrap_or_default()
    }

    /// Everything in the log (messages and notices), as text.
    pub async fn log(&self) -> Vec<String> {
        let script =
            r#"return [...document.querySelectorAll('#log li')].map((li) => li.textContent)"#;
        serde_json::from_value(self.eval(script, vec![]).await).unwrap_or_default()
    }

    /// Sends `text` through the composer. (WebDriver cannot type characters outside Unicode's
    /// first plane, emoji among them, so the text is set by script; the form is submitted as
    /// the Enter key would.)
    pub async fn say(&self, text: &str) {
        let script = r#"const box = document.getElementById('text');
            box.value = arguments[0];
            document.getElementById('composer').requestSubmit();
            return true"#;
        self.eval(script, vec![json!(text)]).await;
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: screenshot: {e}", self.name));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// The workspace's terminal client (`servers/client`, binary `chat`), built if needed.
pub fn chat_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "-p", "chat-client", "--bin", "chat"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo build -p chat-client runs");
    assert!(output.status.success(), "cargo build -p chat-client failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the chat binary")
}
