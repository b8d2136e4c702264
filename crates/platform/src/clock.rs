//! Today's date in the district, injectable: rules speak of dates (acceptance, publicity,
//! deadlines in working days), and tests move them by hand.

use time::Date;

/// Today's local date.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn today(&self) -> Date;
}

/// The district's local date (UTC+8, no daylight saving).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> Date {
        (time::OffsetDateTime::now_utc() + time::Duration::hours(8)).date()
    }
}

/// A clock set by hand (tests, rehearsals).
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<Date>);

impl ManualClock {
    pub fn new(today: Date) -> Self {
        ManualClock(std::sync::Mutex::new(today))
    }

    pub fn set(&self, today: Date) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = today;
    }
}

impl Clock for ManualClock {
    fn today(&self) -> Date {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
