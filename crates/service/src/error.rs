//! Errors of the service, and how they reach a client: JSON
//! `{"error": {"status", "code", "message", "where"}}` on the API (`where` is the method and the
//! route template, added by [`json_errors`] for every 4xx/5xx, axum's own rejections included).
//! The `code` is stable; the `message` is in the request's language (`Accept-Language`, Chinese
//! by default: [`crate::messages`]).

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::header::{CONTENT_LANGUAGE, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::locale::Lang;

/// Why a request failed. Messages say what to do instead; they never carry personal data.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("too many failed sign-ins from this address: wait a minute and try again")]
    RateLimited,
    /// Over a per-token rate (the push's batches per minute): 429.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request breaks `schemas/openapi.json` (400).
    #[error("{0}")]
    BadRequest(String),
    /// A body not sent as `application/json` (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request keeps the document but breaks a rule it states only in words (422).
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the database is not answering: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited | ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::RateLimited | ApiError::TooManyRequests(_) => "rate_limited",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<doudi_store::StoreError> for ApiError {
    fn from(e: doudi_store::StoreError) -> Self {
        match e {
            doudi_store::StoreError::Conflict(m) => ApiError::Conflict(m),
            other => {
                doudi_telemetry::db_error("read");
                tracing::error!(error = %other, "store error while serving a request");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<doudi_pipeline::PipelineError> for ApiError {
    fn from(e: doudi_pipeline::PipelineError) -> Self {
        match e {
            doudi_pipeline::PipelineError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "pipeline error while serving a request");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<doudi_app::AppError> for ApiError {
    fn from(e: doudi_app::AppError) -> Self {
        use doudi_app::AppError as A;
        match e {
            A::NotFound(m) => ApiError::NotFound(m),
            A::Forbidden(m) => ApiError::Forbidden(m),
            // A use case refuses what passed the request's checks (the document's schema, the
            // handler's bounds) only by a rule the document states in words: 422, not 400.
            A::BadRequest(m) => ApiError::Unprocessable(m),
            A::Conflict(m) => ApiError::Conflict(m),
            A::Unusable(m) => ApiError::Internal(m),
            A::Store(e) => e.into(),
            A::Pipeline(e) => e.into(),
        }
    }
}

/// What an error response carries until [`json_errors`] writes its body.
#[derive(Clone, Debug)]
pub(crate) struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status().into_response();
        r.extensions_mut().insert(ErrorInfo {
            code: self.code(),
            message: self.to_string(),
        });
        r
    }
}

/// The largest rejection text read back to wrap it in JSON.
const MAX_REJECTION_TEXT: usize = 4096;

fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// Middleware: every 4xx/5xx response of the API (and of the probes) becomes a JSON error that
/// says what failed and where (method and route template) — ours, and axum's rejections (a bad
/// query string, a body that is not JSON or too large, an unknown route, a wrong method).
///
/// The `message` is in the request's language (`Accept-Language`, Chinese by default; see
/// [`Lang::from_accept_language`]), said in `Content-Language`; the `code` is the same in both.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let lang = Lang::from_accept_language(req.headers());
    let place = format!(
        "{} {}",
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned())
    );
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let (code, message) = match parts.extensions.remove::<ErrorInfo>() {
        Some(info) => (info.code, info.message),
        None => {
            let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            let text = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            };
            (code_for(status), text)
        }
    };
    let message = crate::messages::message(lang, status.as_u16(), &message);
    let body = serde_json::json!({"error": {
        "status": status.as_u16(), "code": code, "message": message, "where": place,
    }});
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    parts.headers.insert(
        CONTENT_LANGUAGE,
        axum::http::HeaderValue::from_static(lang.html()),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// An error of the service in the page's language: English as the use case says it; in Chinese
/// the known refusals in words, otherwise what the status means and what to do.
pub fn api_error(lang: Lang, e: &ApiError) -> String {
    let msg = e.to_string();
    if lang == Lang::En {
        return msg;
    }
    let known: &[(&str, &str)] = &[
        ("unknown token", "令牌无效、已过期或已撤销：请重新登录。"),
        ("expired", "令牌已过期：请向管理员申请新的令牌后重新登录。"),
        ("revoked", "令牌已被撤销：请向管理员申请新的令牌。"),
        ("form token", "表单已失效：请刷新页面后重新提交。"),
        ("another site", "该表单来自其他网站，已拒绝。"),
        ("may not use", "您的角色无权打开此页面。"),
        (
            "acts for no officer",
            "该令牌未关联干部，不能处理预警或复核。",
        ),
        ("needs amount", "给予临时救助时请填写金额（元）。"),
        (
            "not an amount",
            "金额格式不对：请填写元，例如 1500 或 1500.50。",
        ),
        ("needs category", "纳入保障时请选择类别。"),
        ("unknown category", "保障类别不正确：请从列表中选择。"),
        ("needs department", "转介时请填写接收部门。"),
        ("unknown disposition", "处置方式不正确：请从列表中选择。"),
        ("too many failed", "失败次数过多：请一分钟后再试。"),
        ("larger than the service accepts", "提交的内容过长。"),
        (
            "is not in the register",
            "名册中没有这一户（或不在您的辖区内）。",
        ),
        ("no warning", "没有这条预警（或不在您的辖区内）。"),
        ("review", "复核记录不存在或已处理。"),
        ("moved meanwhile", "预警刚被他人处理过：请刷新页面后再试。"),
        (
            "the database is not answering",
            "数据库暂时无法访问：请稍后再试。",
        ),
    ];
    for (needle, zh) in known {
        if msg.contains(needle) {
            return (*zh).to_string();
        }
    }
    match e.status().as_u16() {
        401 => "请先登录。",
        403 => "您无权执行此操作。",
        404 => "没有找到（或不在您的辖区内）。",
        409 => "情况已有变化：请刷新页面后再试。",
        413 => "提交的内容过长。",
        422 | 400 => "提交的内容不完整或格式不对：请检查后重新提交。",
        429 => "请求过于频繁：请稍后再试。",
        503 => "服务暂时不可用：请稍后再试。",
        _ => "系统出错：请稍后再试，或联系管理员。",
    }
    .to_string()
}

#[cfg(test)]
mod page_message_tests {
    use super::*;

    #[test]
    fn a_refusal_on_a_page_is_in_the_pages_language() {
        let e = ApiError::Unauthenticated("unknown token".into());
        assert!(api_error(Lang::Zh, &e).contains("令牌无效"));
        assert_eq!(api_error(Lang::En, &e), "unknown token");
    }
}
