use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shoal_wire::v1::Message;

/// An API failure: a status code and one line naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(Message::new(self.message))).into_response()
    }
}

impl From<shoal_store::StoreError> for ApiError {
    fn from(e: shoal_store::StoreError) -> Self {
        use shoal_store::StoreError;
        match e {
            StoreError::NotLeader { .. }
            | StoreError::NoQuorum { .. }
            | StoreError::DiskFull { .. }
            | StoreError::Stalled => ApiError::unavailable(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl From<shoal_api::SpecError> for ApiError {
    fn from(e: shoal_api::SpecError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<crate::alloc::PortError> for ApiError {
    fn from(e: crate::alloc::PortError) -> Self {
        ApiError::conflict(e.to_string())
    }
}

impl From<crate::alloc::VipExhausted> for ApiError {
    fn from(e: crate::alloc::VipExhausted) -> Self {
        ApiError::conflict(e.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::new(e.status(), e.body_text().replace('\n', " "))
    }
}
