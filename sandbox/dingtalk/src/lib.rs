//! Fake of DingTalk (钉钉) open platform (being written).
