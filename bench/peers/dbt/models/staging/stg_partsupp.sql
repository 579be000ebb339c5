SELECT * EXCLUDE (filename, newest)
FROM (
    SELECT *,
           row_number() OVER (PARTITION BY ps_partkey, ps_suppkey ORDER BY filename DESC)
               AS newest
    FROM read_parquet('{{ env_var("LANDING_ROOT") }}/partsupp/*.parquet', filename = true)
    WHERE ps_partkey >= 1 AND ps_suppkey >= 1 AND ps_availqty >= 0 AND ps_supplycost > 0
      AND ps_comment IS NOT NULL
)
WHERE newest = 1
