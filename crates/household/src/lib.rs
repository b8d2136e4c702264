//! The household (户) in one place, owned by no service. Intake writes the household's stream
//! (`intake-household-<id>`); its events are a published contract, and every service that
//! needs the household — review to evaluate a case, payment and disclosure next — reads it
//! through this crate: the same typed decode, the same fold, the same answers to "is this
//! member alive", "is this program already open".
//!
//! # Layout
//! - [`events`]: [`HouseholdEvent`], the stream kind's events and their one typed decode; the
//!   stream id of a household.
//! - [`state`]: [`HouseholdState`], folded from the stream (`apply` only folds), and the
//!   decisions about the household itself ([`HouseholdError`]). Pure.
//! - [`sealed`]: [`SealedField`], where each sealed personal datum lives and the associated
//!   data it is sealed under — one path builder for every field. Pure.
//! - [`load`]: read → decode → fold of one household from the log.
//!
//! Intake's commands (what may be done to a household, by whom) stay in intake: this crate
//! says what a household *is*, not who may change it.

pub mod events;
pub mod load;
pub mod sealed;
pub mod state;

pub use events::{HouseholdEvent, stream_id};
pub use load::{LoadError, load};
pub use sealed::SealedField;
pub use state::{HouseholdError, HouseholdState, MemberState, OpenApplication};
