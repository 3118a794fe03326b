//! The core's facts as Workers Analytics Engine data points: one per request, on the dataset
//! bound as `FACTS` (wrangler.toml), its columns laid out by [`edge_core::facts::data_point`].
//! Without the binding the facts are only logged (Workers Logs).

use std::cell::RefCell;

use edge_core::facts::{FactsSink, RequestFacts, TurnFacts, data_point};
use worker::{AnalyticsEngineDataPointBuilder, AnalyticsEngineDataset, Env};

/// The binding's name.
pub const FACTS_BINDING: &str = "FACTS";

/// One request's sink: the turn's facts wait for the request's, then both go out as one point.
pub struct AnalyticsFacts {
    dataset: Option<AnalyticsEngineDataset>,
    turn: RefCell<Option<TurnFacts>>,
}

impl AnalyticsFacts {
    pub fn from_env(env: &Env) -> Self {
        Self {
            dataset: env.analytics_engine(FACTS_BINDING).ok(),
            turn: RefCell::new(None),
        }
    }
}

impl FactsSink for AnalyticsFacts {
    fn turn(&self, facts: &TurnFacts) {
        *self.turn.borrow_mut() = Some(facts.clone());
    }

    fn request(&self, facts: &RequestFacts) {
        let Some(dataset) = &self.dataset else { return };
        let turn = self.turn.borrow_mut().take();
        let point = data_point(facts, turn.as_ref());
        let built = AnalyticsEngineDataPointBuilder::new()
            .indexes([point.index])
            .blobs(point.blobs.iter().map(String::as_str))
            .doubles(point.doubles)
            .build();
        // Writing never blocks the answer; a refused point is logged, not fatal.
        if let Err(error) = dataset.write_data_point(&built) {
            tracing::warn!(%error, "analytics engine data point not written");
        }
    }
}
