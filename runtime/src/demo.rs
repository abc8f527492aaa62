//! Stand-ins for outside providers, so that a generated system runs end to end on a laptop
//! and in tests with no account anywhere. Nothing here is for production: no money moves. A
//! system compiles this module (feature `demo`) only when its spec takes payments, and says so
//! in its README.

pub mod payment {
    //! A payment provider that takes every charge (no money moves) except for the test card
    //! [`DECLINED_CARD`]; a charge without a card goes on account.

    use crate::http::ApiError;
    use axum::http::StatusCode;

    /// The card number the demo provider always declines.
    pub const DECLINED_CARD: &str = "4000000000000002";

    /// A payment that went through.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Charge {
        /// The provider's reference.
        pub id: uuid::Uuid,
        /// The amount, in cents.
        pub amount_cents: i64,
    }

    /// Takes `amount_cents`: 402 when declined, 400 for a negative amount.
    pub async fn charge(amount_cents: i64, card: Option<&str>) -> Result<Charge, ApiError> {
        if amount_cents < 0 {
            return Err(ApiError::bad_request("a payment cannot be negative"));
        }
        if card.is_some_and(|card| card.trim() == DECLINED_CARD) {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "the payment was declined",
            ));
        }
        let charge = Charge {
            id: uuid::Uuid::now_v7(),
            amount_cents,
        };
        tracing::info!(charge = %charge.id, amount_cents, "demo payment taken");
        Ok(charge)
    }

    /// Gives a charge back.
    pub async fn refund(charge: Charge) -> Result<(), tonic::Status> {
        tracing::info!(charge = %charge.id, amount_cents = charge.amount_cents, "demo payment refunded");
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[tokio::test]
        async fn the_demo_provider_declines_its_test_card_with_402() {
            let declined = charge(500, Some(DECLINED_CARD)).await.unwrap_err();
            assert_eq!(declined.status(), StatusCode::PAYMENT_REQUIRED);
            let taken = charge(500, Some("4242424242424242")).await.unwrap();
            assert_eq!(taken.amount_cents, 500);
            assert!(charge(500, None).await.is_ok());
            assert_eq!(
                charge(-1, None).await.unwrap_err().status(),
                StatusCode::BAD_REQUEST
            );
        }
    }
}
