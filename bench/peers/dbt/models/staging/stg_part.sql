SELECT * EXCLUDE (filename, newest)
FROM (
    SELECT *, row_number() OVER (PARTITION BY p_partkey ORDER BY filename DESC) AS newest
    FROM read_parquet('{{ env_var("LANDING_ROOT") }}/part/*.parquet', filename = true)
    WHERE p_partkey >= 1 AND p_size >= 1 AND p_retailprice > 0 AND p_name IS NOT NULL
      AND p_mfgr IS NOT NULL AND p_brand IS NOT NULL AND p_type IS NOT NULL
      AND p_container IS NOT NULL AND p_comment IS NOT NULL
)
WHERE newest = 1
