SELECT * EXCLUDE (filename, newest)
FROM (
    SELECT *, row_number() OVER (PARTITION BY c_custkey ORDER BY filename DESC) AS newest
    FROM read_parquet('{{ env_var("LANDING_ROOT") }}/customer/*.parquet', filename = true)
    WHERE c_custkey >= 1 AND c_nationkey >= 0
      AND c_mktsegment IN ('AUTOMOBILE', 'BUILDING', 'FURNITURE', 'HOUSEHOLD', 'MACHINERY')
      AND c_name IS NOT NULL AND c_address IS NOT NULL AND c_phone IS NOT NULL
      AND c_acctbal IS NOT NULL AND c_comment IS NOT NULL
)
WHERE newest = 1
