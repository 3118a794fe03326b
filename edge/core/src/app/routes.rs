//! Which route a request is for: method and path, checked before anything else. Unknown paths
//! are 404, known paths with another method 405 (with `Allow`).

use crate::auth::is_valid_user_id;
use crate::error::ApiError;
use crate::http::percent_decode;

use super::page::PageAsset;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    /// `GET /health`: liveness, answered without authentication.
    Health,
    /// The chat page and its files: public, like any web page (the API they call is not).
    Page(PageAsset),
    /// Everything else: authenticated and rate-limited first.
    Api(ApiRoute),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ApiRoute {
    Respond,
    History(String),
    DeleteHistory(String),
    /// `GET /api/chat/summary/{user_id}`: statistics over a user's stored history.
    HistoryStats(String),
    ChatHealth,
    ModelInfo,
    OpenAiChat,
    OpenAiModels,
    /// `POST /api/chat/cache/warm` (admin scope): fill pools ahead of traffic.
    WarmCache,
}

pub(super) fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let not_allowed = |allow: &'static str| ApiError::MethodNotAllowed {
        method: method.to_owned(),
        allow,
    };
    let user_segment = |rest: &str| -> Result<String, ApiError> {
        percent_decode(rest)
            .filter(|id| !rest.contains('/') && is_valid_user_id(id))
            .ok_or_else(|| ApiError::invalid("invalid_user_id", "user id in the path is not valid"))
    };
    let only = |allowed: &'static str, route: ApiRoute| {
        if method == allowed {
            Ok(Route::Api(route))
        } else {
            Err(not_allowed(allowed))
        }
    };
    if let Some(asset) = PageAsset::at(path) {
        return match method {
            "GET" | "HEAD" => Ok(Route::Page(asset)),
            _ => Err(not_allowed("GET")),
        };
    }
    match path {
        "/health" => match method {
            "GET" | "HEAD" => Ok(Route::Health),
            _ => Err(not_allowed("GET")),
        },
        "/api/chat/respond" => only("POST", ApiRoute::Respond),
        "/api/chat/health" => only("GET", ApiRoute::ChatHealth),
        "/api/chat/model-info" => only("GET", ApiRoute::ModelInfo),
        "/v1/chat/completions" => only("POST", ApiRoute::OpenAiChat),
        "/v1/models" => only("GET", ApiRoute::OpenAiModels),
        "/api/chat/cache/warm" => only("POST", ApiRoute::WarmCache),
        _ => {
            if let Some(rest) = path.strip_prefix("/api/chat/history/") {
                match method {
                    "GET" => Ok(Route::Api(ApiRoute::History(user_segment(rest)?))),
                    "DELETE" => Ok(Route::Api(ApiRoute::DeleteHistory(user_segment(rest)?))),
                    _ => Err(not_allowed("GET, DELETE")),
                }
            } else if let Some(rest) = path.strip_prefix("/api/chat/summary/") {
                match method {
                    "GET" => Ok(Route::Api(ApiRoute::HistoryStats(user_segment(rest)?))),
                    _ => Err(not_allowed("GET")),
                }
            } else {
                Err(ApiError::NotFound(path.to_owned()))
            }
        }
    }
}
