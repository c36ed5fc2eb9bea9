-- One definition of the histogram quantile for queries costflow runs from Python
-- (report tails, the decision template's latency). The views of 0006 keep their own
-- copies (a shipped migration is never edited; tests hold them equal).
--
-- bins: sorted array of (bin, count, sum); n: total count; pct: 1..100. Returns the
-- bin that holds the value of nearest rank ceil(pct% of n).
-- SQL functions are global to a ClickHouse server, not per database: the name carries
-- a version, and a later change gets a new name. On a cluster, create it ON CLUSTER.

CREATE FUNCTION IF NOT EXISTS costflow_bin_at_v1 AS (bins, n, pct) -> bins[arrayFirstIndex(c -> c >= intDiv(n * pct + 99, 100), arrayCumSum(arrayMap(b -> b.2, bins)))];
