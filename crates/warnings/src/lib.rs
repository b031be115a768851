//! Warning lifecycle decisions: open, update, escalate per household episode. Pure.
