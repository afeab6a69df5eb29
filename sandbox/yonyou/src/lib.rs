//! Fake of Yonyou YonBIP (用友) open API (being written).
