//! The request-body extractor for types that are also stored: strict at the API edge.
//!
//! Stored types ignore fields they do not know (see `shoal_api::strict`); a user's request
//! naming a field the API does not know is refused with that field's path.

use super::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body read with `shoal_api::strict::from_json`.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text().replace('\n', " ")))?;
        shoal_api::strict::from_json(&bytes)
            .map(StrictJson)
            .map_err(|e| {
                // As axum's own JSON extractor: 400 for what is not JSON, 422 for the wrong shape.
                let status = if e.is_data() {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::BAD_REQUEST
                };
                ApiError::new(status, e.to_string())
            })
    }
}
