//! A headless Chromium session through chromedriver (WebDriver, plain HTTP on 127.0.0.1) for
//! the dashboard's browser tests: bounded waits, lookups that fail with the page they looked
//! at, and numbered screenshots under `target/dashboard-screenshots/`. Include with
//! `#[path = "support/browser.rs"] mod browser;`.
//!
//! The WebDriver URL comes from `KONSTACKS_WEBDRIVER_URL` (set by `scripts/test-dashboard.sh`);
//! without it the test fails rather than skips, so a run that was meant to drive a browser
//! never passes silently.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// The environment variable carrying chromedriver's URL.
pub const WEBDRIVER_ENV: &str = "KONSTACKS_WEBDRIVER_URL";

/// The size of the page area (and of every screenshot).
pub const VIEWPORT: (u32, u32) = (1280, 900);

/// How long a lookup waits for its element by default.
pub const FIND_TIMEOUT: Duration = Duration::from_secs(15);

/// A browser session plus where its screenshots go.
pub struct Browser {
    /// The WebDriver client (one Chromium window).
    pub client: Client,
    shots: PathBuf,
    prefix: String,
    step: u32,
}

impl Browser {
    /// Start headless Chromium at 1280x900. Screenshots are written as
    /// `target/dashboard-screenshots/<prefix>NN-<step>.png`; earlier files with the same prefix
    /// are removed first so the folder shows one run.
    pub async fn start(prefix: &str) -> Self {
        let url = std::env::var(WEBDRIVER_ENV).unwrap_or_else(|_| {
            panic!("{WEBDRIVER_ENV} is not set: run scripts/test-dashboard.sh, which starts chromedriver")
        });
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"] }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session at {url}: {e}"));
        // `--window-size` sizes the window, and headless Chromium still counts its toolbars in
        // it: grow the window so the page itself (and every screenshot) is 1280x900.
        let frame = client
            .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];", vec![])
            .await
            .unwrap();
        let extra = |i: usize| frame[i].as_u64().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        client.set_window_size(VIEWPORT.0 + extra(0), VIEWPORT.1 + extra(1)).await.unwrap();
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("dashboard-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        for entry in std::fs::read_dir(&shots).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.ends_with(".png")
                && name
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()) || rest == "failure.png");
            if ours {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Self { client, shots, prefix: prefix.to_string(), step: 0 }
    }

    /// Save a screenshot of the viewport as the next numbered step and print its path.
    pub async fn shot(&mut self, name: &str) -> PathBuf {
        self.step += 1;
        let png = self.client.screenshot().await.unwrap();
        let path = self.shots.join(format!("{}{:02}-{name}.png", self.prefix, self.step));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    /// Open `url` in the window.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The path and query of the current page.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Where the window is and what it shows, for failure messages (the page's text, cut);
    /// also saves the window as `<prefix>failure.png` next to the steps' screenshots.
    pub async fn context(&self) -> String {
        let path = self.path().await;
        let shot = self.shots.join(format!("{}failure.png", self.prefix));
        if let Ok(png) = self.client.screenshot().await {
            if std::fs::write(&shot, png).is_ok() {
                println!("screenshot: {}", shot.display());
            }
        }
        let text = self
            .client
            .execute("return document.body ? document.body.innerText : document.documentElement.outerHTML", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let cut: String = text.chars().take(3000).collect();
        format!("at {path}; the page reads:\n{cut}")
    }

    /// The element matching `css`, waiting up to [`FIND_TIMEOUT`]; panics with the page shown.
    pub async fn find(&self, css: &str) -> Element {
        self.find_within(css, FIND_TIMEOUT).await
    }

    /// The element matching `css`, waiting up to `timeout`; panics with the page shown.
    pub async fn find_within(&self, css: &str, timeout: Duration) -> Element {
        match self.client.wait().at_most(timeout).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no element `{css}` ({e}) {}", self.context().await),
        }
    }

    /// Every element matching `css` now (no waiting).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.all(css).await.len()
    }

    /// The visible text of the element matching `css`, trimmed.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap().trim().to_string()
    }

    /// Replace the value of the text control matching `css` with `value`.
    pub async fn fill(&self, css: &str, value: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(value).await.unwrap();
    }

    /// Click the element matching `css`.
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        e.click().await.unwrap_or_else(|err| panic!("cannot click `{css}`: {err}"));
    }

    /// Click `css`, then wait until the element `then` is on the page (the next page loaded).
    pub async fn click_to(&self, css: &str, then: &str) -> Element {
        self.click(css).await;
        self.find(then).await
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) and return its result.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Press and release Tab once (as a person would, on whatever has focus).
    pub async fn tab(&self) {
        let key: char = Key::Tab.into();
        let keys = KeyActions::new("keyboard".to_string())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.unwrap();
    }

    /// Poll the trimmed text of `css` until `done` accepts it or `timeout` passes; the element
    /// may disappear and come back meanwhile (a page that refreshes itself). Returns the last
    /// text read.
    pub async fn wait_text(&self, css: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    last = t.trim().to_string();
                    if done(&last) {
                        return last;
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!("`{css}` still reads {last:?} after {timeout:?} {}", self.context().await);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// End the browser session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
