//! Sex, as the register records it and as an identity number's sequence digit encodes it. A leaf:
//! both the register (`household`) and identity numbers (`id_number`) use it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
}
