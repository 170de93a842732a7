//! The weights a pick goes by. An endpoint of weight 0 is used only when no endpoint of
//! weight above 0 is left: when every endpoint of a set has weight 0, they all count as 1.

use crate::endpoint::Endpoint;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Weights {
    all_zero: bool,
}

impl Weights {
    pub(crate) fn of(endpoints: &[Endpoint]) -> Weights {
        Weights {
            all_zero: endpoints.iter().all(|e| e.weight == 0),
        }
    }

    /// The weight `endpoint` counts with; 0: not a candidate for the choice.
    pub(crate) fn get(self, endpoint: &Endpoint) -> u32 {
        if self.all_zero {
            1
        } else {
            endpoint.weight
        }
    }

    /// The indices of the candidates for the choice, in order.
    pub(crate) fn candidates(self, endpoints: &[Endpoint]) -> Candidates {
        if self.all_zero || endpoints.iter().all(|e| e.weight > 0) {
            Candidates::All(endpoints.len())
        } else {
            Candidates::Some(
                (0..endpoints.len())
                    .filter(|&i| endpoints[i].weight > 0)
                    .collect(),
            )
        }
    }
}

/// Indices of the endpoints a choice is made among; without allocating when it is all of
/// them.
#[derive(Debug, Clone)]
pub(crate) enum Candidates {
    All(usize),
    Some(Vec<usize>),
}

impl Candidates {
    pub(crate) fn len(&self) -> usize {
        match self {
            Candidates::All(len) => *len,
            Candidates::Some(indices) => indices.len(),
        }
    }

    /// The index into the set of the `k`th candidate.
    pub(crate) fn get(&self, k: usize) -> usize {
        match self {
            Candidates::All(_) => k,
            Candidates::Some(indices) => indices[k],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::set;

    #[test]
    fn weight_zero_counts_only_when_every_weight_is_zero() {
        let mixed = set(&[0, 2, 0, 1]);
        let w = Weights::of(&mixed);
        assert_eq!(
            mixed.iter().map(|e| w.get(e)).collect::<Vec<_>>(),
            [0, 2, 0, 1]
        );
        let c = w.candidates(&mixed);
        assert_eq!((c.len(), c.get(0), c.get(1)), (2, 1, 3));

        let zeros = set(&[0, 0]);
        let w = Weights::of(&zeros);
        assert_eq!(zeros.iter().map(|e| w.get(e)).collect::<Vec<_>>(), [1, 1]);
        assert_eq!(w.candidates(&zeros).len(), 2);
    }
}
