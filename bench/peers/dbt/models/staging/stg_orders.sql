-- Daily CSV drops as text: typed, checked against the declared rules, one row per key
-- (duplicates and re-sends collapse), orphans of customer left out.
WITH typed AS (
    SELECT TRY_CAST(trim(o_orderkey) AS BIGINT) AS o_orderkey,
           TRY_CAST(trim(o_custkey) AS BIGINT) AS o_custkey,
           o_orderstatus,
           TRY_CAST(trim(o_totalprice) AS DECIMAL(15, 2)) AS o_totalprice,
           TRY_CAST(trim(o_orderdate) AS DATE) AS o_orderdate,
           o_orderpriority,
           o_clerk,
           TRY_CAST(trim(o_shippriority) AS INTEGER) AS o_shippriority,
           o_comment,
           filename
    FROM read_csv('{{ env_var("LANDING_ROOT") }}/orders/*.csv', all_varchar = true,
                  header = true, union_by_name = true, null_padding = true, filename = true)
),
valid AS (
    SELECT *, row_number() OVER (PARTITION BY o_orderkey ORDER BY filename DESC) AS newest
    FROM typed
    WHERE o_orderkey >= 1 AND o_custkey >= 1 AND o_orderstatus IN ('O', 'F', 'P')
      AND o_totalprice >= 0 AND o_shippriority >= 0
      AND o_orderdate BETWEEN DATE '1992-01-01' AND DATE '1998-12-31'
      AND o_orderpriority IS NOT NULL AND o_clerk IS NOT NULL AND o_comment IS NOT NULL
)
SELECT * EXCLUDE (filename, newest), date_trunc('month', o_orderdate)::DATE AS order_month
FROM valid
WHERE newest = 1 AND o_custkey IN (SELECT c_custkey FROM {{ ref('stg_customer') }})
