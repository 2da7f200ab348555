//! A small user-agent classifier: the browser family, curl, or a bot. Enough for a dashboard;
//! not a device database.

use serde::Serialize;

/// The family of a user agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Agent {
    /// Chrome and Chromium (desktop and mobile), and browsers that say nothing more specific.
    Chrome,
    /// Firefox (desktop, Android, iOS).
    Firefox,
    /// Safari (macOS, iOS).
    Safari,
    /// Microsoft Edge (Chromium-based and legacy).
    Edge,
    /// The curl command-line tool.
    Curl,
    /// Crawlers, spiders, monitors and headless browsers.
    Bot,
    /// Anything else, including no user agent at all.
    Other,
}

impl Agent {
    /// The name stored in the database: `chrome`, `firefox`, `safari`, `edge`, `curl`, `bot`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chrome => "chrome",
            Self::Firefox => "firefox",
            Self::Safari => "safari",
            Self::Edge => "edge",
            Self::Curl => "curl",
            Self::Bot => "bot",
            Self::Other => "other",
        }
    }
}

/// Markers of automated clients; checked first because many crawlers also claim to be Chrome.
const BOT_MARKERS: [&str; 9] =
    ["bot", "crawl", "spider", "slurp", "headless", "lighthouse", "monitor", "preview", "scan"];

/// Classifies a `User-Agent` header value. The order matters: bots and Edge also say `Chrome`,
/// Chrome also says `Safari`, and Opera also says `Chrome` (it counts as other).
///
/// ```
/// use annex_ext_analytics::{Agent, classify};
/// assert_eq!(classify("curl/8.5.0"), Agent::Curl);
/// ```
pub fn classify(user_agent: &str) -> Agent {
    let ua = user_agent.to_ascii_lowercase();
    if BOT_MARKERS.iter().any(|m| ua.contains(m)) {
        Agent::Bot
    } else if ua.starts_with("curl/") {
        Agent::Curl
    } else if ["edg/", "edge/", "edga/", "edgios/"].iter().any(|m| ua.contains(m)) {
        Agent::Edge
    } else if ua.contains("opr/") || ua.contains("opera") {
        Agent::Other
    } else if ua.contains("firefox/") || ua.contains("fxios/") {
        Agent::Firefox
    } else if ua.contains("chrome/") || ua.contains("crios/") || ua.contains("chromium/") {
        Agent::Chrome
    } else if ua.contains("safari/") && ua.contains("version/") {
        Agent::Safari
    } else {
        Agent::Other
    }
}

#[cfg(test)]
mod tests {
    use super::{Agent, classify};

    #[test]
    fn desktop_and_mobile_browsers_are_recognised() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                Agent::Chrome,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
                Agent::Chrome,
            ),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", Agent::Firefox),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
                Agent::Firefox,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
                Agent::Safari,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                Agent::Safari,
            ),
        ];
        for (ua, family) in cases {
            assert_eq!(classify(ua), family, "{ua}");
        }
    }

    #[test]
    fn edge_is_not_counted_as_chrome() {
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80";
        assert_eq!(classify(edge), Agent::Edge);
        let legacy = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0 Safari/537.36 Edge/18.17763";
        assert_eq!(classify(legacy), Agent::Edge);
    }

    #[test]
    fn opera_is_other_not_chrome() {
        let opera = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0";
        assert_eq!(classify(opera), Agent::Other);
    }

    #[test]
    fn crawlers_and_headless_browsers_are_bots_even_when_they_claim_chrome() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/124.0.6367.155 Safari/537.36",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
            "UptimeRobot/2.0 (http://www.uptimerobot.com/) monitor",
        ] {
            assert_eq!(classify(ua), Agent::Bot, "{ua}");
        }
    }

    #[test]
    fn curl_is_recognised_and_other_tools_are_other() {
        assert_eq!(classify("curl/8.5.0"), Agent::Curl);
        assert_eq!(classify("python-requests/2.31.0"), Agent::Other);
        assert_eq!(classify("Wget/1.21.4"), Agent::Other);
        assert_eq!(classify(""), Agent::Other);
    }

    #[test]
    fn classification_ignores_case() {
        assert_eq!(classify("CURL/7.0"), Agent::Curl);
        assert_eq!(classify("mozilla/5.0 firefox/99.0"), Agent::Firefox);
    }
}
