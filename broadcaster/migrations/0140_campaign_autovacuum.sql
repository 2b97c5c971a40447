-- The tables a campaign fills are insert-only while it runs (issue 15, docs/scaling.md).
-- Vacuum: PostgreSQL vacuums a table for inserts once they reach 20 % of its size; in a 5M
-- campaign that came every ~1M rows, the vacuum worker was busy 23-73 % of each tenth and the
-- tenths in which it marked the ledger all-visible logged 0.15-0.23 full-page images per
-- recipient (data checksums are on). A fixed step (200k rows, plus 1 % so a 100M-row table
-- is not vacuumed for every 200k) keeps each vacuum to pages written moments ago: 2-8 % busy,
-- no full-page images from it.
-- Analyze: every 10 % of growth, each one reading a 30,000-page sample of the whole table
-- (mostly evicted: 35k-77k blocks read a tenth); the keys a campaign writes grow at the right
-- edge, where the planner reads the actual bounds from the index, so the statistics of half
-- again as many rows are as good.
ALTER TABLE channels SET (autovacuum_vacuum_insert_threshold = 200000, autovacuum_vacuum_insert_scale_factor = 0.01,
                          autovacuum_analyze_scale_factor = 0.5);
ALTER TABLE members SET (autovacuum_vacuum_insert_threshold = 200000, autovacuum_vacuum_insert_scale_factor = 0.01,
                         autovacuum_analyze_scale_factor = 0.5);
ALTER TABLE messages SET (autovacuum_vacuum_insert_threshold = 200000, autovacuum_vacuum_insert_scale_factor = 0.01,
                          autovacuum_analyze_scale_factor = 0.5);
ALTER TABLE campaign_recipients SET (autovacuum_vacuum_insert_threshold = 200000,
                                     autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.5);
