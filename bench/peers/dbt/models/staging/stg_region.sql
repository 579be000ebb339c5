-- Dimension snapshots: every snapshot's rows, the newest file's copy of each key kept.
SELECT * EXCLUDE (filename, newest)
FROM (
    SELECT *, row_number() OVER (PARTITION BY r_regionkey ORDER BY filename DESC) AS newest
    FROM read_parquet('{{ env_var("LANDING_ROOT") }}/region/*.parquet', filename = true)
    WHERE r_regionkey >= 0 AND r_name IS NOT NULL AND r_comment IS NOT NULL
)
WHERE newest = 1
