//! The model catalog: which models exist, which are allowed, what each can do.
