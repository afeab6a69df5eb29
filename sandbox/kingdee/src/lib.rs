//! Fake of Kingdee K/3 Cloud (金蝶云星空) WebAPI (being written).
