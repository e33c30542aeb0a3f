//! The CLI's side of the admin API.

use super::{ApiError, DndRequest, RegistrationView, TrunkView};
use crate::call::test_ring::{RingReport, RingRequest};
use crate::config::Settings;
use crate::routing::presence::UserPresence;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the gateway's API at {url}: {reason} (is `whatsip serve` running with this configuration?)")]
    Unreachable { url: String, reason: String },
    #[error("the gateway refused: {0}")]
    Refused(String),
    #[error("the API token is wrong; use the one in the configuration or <data_dir>/api.token")]
    Unauthorized,
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
}

pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// Finds the API the same way the gateway does: `api.listen` and the token from the
    /// settings or the data directory; `api_url`/`token` override them.
    pub fn from_settings(settings: &Settings, api_url: Option<String>, token: Option<String>) -> Result<ApiClient, ClientError> {
        let base = api_url.unwrap_or_else(|| format!("http://{}", settings.api.listen)).trim_end_matches('/').to_string();
        let token = match token {
            Some(t) => t,
            None if !settings.api.token.is_empty() => settings.api.token.clone(),
            None => std::fs::read_to_string(settings.data_dir.join("api.token"))
                .map(|t| t.trim().to_string())
                .map_err(|e| ClientError::Unreachable {
                    url: base.clone(),
                    reason: format!("no API token configured and {}/api.token unreadable: {e}", settings.data_dir.display()),
                })?,
        };
        let http = reqwest::Client::builder().build().map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(ApiClient { base, token, http })
    }

    pub async fn ring(&self, request: &RingRequest) -> Result<RingReport, ClientError> {
        // The call lasts as long as it lasts; allow the ring time, the call time and a margin.
        let limit = Duration::from_secs(u64::from(request.seconds) + u64::from(request.ring_timeout_seconds.unwrap_or(60)) + 30);
        let req = self.http.post(format!("{}/api/ring", self.base)).json(request).timeout(limit);
        self.send(req).await
    }

    pub async fn registrations(&self) -> Result<Vec<RegistrationView>, ClientError> {
        self.send(self.http.get(format!("{}/api/registrations", self.base))).await
    }

    pub async fn calls(&self, limit: usize) -> Result<Vec<crate::store::CallRecord>, ClientError> {
        self.send(self.http.get(format!("{}/api/calls?limit={limit}", self.base))).await
    }

    pub async fn users(&self) -> Result<Vec<UserPresence>, ClientError> {
        self.send(self.http.get(format!("{}/api/users", self.base))).await
    }

    /// Sets `user`'s do-not-disturb and returns the user's presence after the change.
    pub async fn set_dnd(&self, user: &str, on: bool) -> Result<UserPresence, ClientError> {
        // A user name may hold characters a path segment must escape ('/', '?', ';').
        let mut url = reqwest::Url::parse(&self.base).map_err(|e| ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        url.path_segments_mut()
            .map_err(|()| ClientError::Unreachable { url: self.base.clone(), reason: "not an http(s) URL".into() })?
            .pop_if_empty()
            .extend(["api", "users", user, "dnd"]);
        self.send(self.http.put(url).json(&DndRequest { on })).await
    }

    pub async fn trunks(&self) -> Result<Vec<TrunkView>, ClientError> {
        self.send(self.http.get(format!("{}/api/trunks", self.base))).await
    }

    pub async fn dialplan_status(&self) -> Result<crate::routing::live::PlanStatus, ClientError> {
        self.send(self.http.get(format!("{}/api/dialplan", self.base))).await
    }

    /// Ok with the new status, or the problems that kept the running plan.
    pub async fn dialplan_reload(&self) -> Result<Result<crate::routing::live::PlanStatus, Vec<String>>, ClientError> {
        let resp = self
            .http
            .post(format!("{}/api/dialplan/reload", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        if resp.status() == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            let refused: super::dialplan::ReloadRefused = resp.json().await.map_err(|e| ClientError::Protocol(e.to_string()))?;
            return Ok(Err(refused.problems));
        }
        self.finish(resp).await.map(Ok)
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        self.finish(resp).await
    }

    async fn finish<T: serde::de::DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized);
        }
        if !status.is_success() {
            let msg = serde_json::from_slice::<ApiError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Refused(msg));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}
