SELECT * EXCLUDE (filename, newest)
FROM (
    SELECT *, row_number() OVER (PARTITION BY n_nationkey ORDER BY filename DESC) AS newest
    FROM read_parquet('{{ env_var("LANDING_ROOT") }}/nation/*.parquet', filename = true)
    WHERE n_nationkey >= 0 AND n_regionkey >= 0 AND n_name IS NOT NULL
      AND n_comment IS NOT NULL
)
WHERE newest = 1
