SELECT * EXCLUDE (filename, newest)
FROM (
    SELECT *, row_number() OVER (PARTITION BY s_suppkey ORDER BY filename DESC) AS newest
    FROM read_parquet('{{ env_var("LANDING_ROOT") }}/supplier/*.parquet', filename = true)
    WHERE s_suppkey >= 1 AND s_nationkey >= 0 AND s_name IS NOT NULL
      AND s_address IS NOT NULL AND s_phone IS NOT NULL AND s_acctbal IS NOT NULL
      AND s_comment IS NOT NULL
)
WHERE newest = 1
