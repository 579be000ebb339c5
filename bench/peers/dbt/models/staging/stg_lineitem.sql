WITH typed AS (
    SELECT TRY_CAST(trim(l_orderkey) AS BIGINT) AS l_orderkey,
           TRY_CAST(trim(l_partkey) AS BIGINT) AS l_partkey,
           TRY_CAST(trim(l_suppkey) AS BIGINT) AS l_suppkey,
           TRY_CAST(trim(l_linenumber) AS INTEGER) AS l_linenumber,
           TRY_CAST(trim(l_quantity) AS DECIMAL(15, 2)) AS l_quantity,
           TRY_CAST(trim(l_extendedprice) AS DECIMAL(15, 2)) AS l_extendedprice,
           TRY_CAST(trim(l_discount) AS DECIMAL(15, 2)) AS l_discount,
           TRY_CAST(trim(l_tax) AS DECIMAL(15, 2)) AS l_tax,
           l_returnflag,
           l_linestatus,
           TRY_CAST(trim(l_shipdate) AS DATE) AS l_shipdate,
           TRY_CAST(trim(l_commitdate) AS DATE) AS l_commitdate,
           TRY_CAST(trim(l_receiptdate) AS DATE) AS l_receiptdate,
           l_shipinstruct,
           l_shipmode,
           l_comment,
           filename
    FROM read_csv('{{ env_var("LANDING_ROOT") }}/lineitem/*.csv', all_varchar = true,
                  header = true, union_by_name = true, null_padding = true, filename = true)
),
valid AS (
    SELECT *,
           row_number() OVER (PARTITION BY l_orderkey, l_linenumber ORDER BY filename DESC)
               AS newest
    FROM typed
    WHERE l_orderkey >= 1 AND l_partkey >= 1 AND l_suppkey >= 1
      AND l_linenumber BETWEEN 1 AND 7 AND l_quantity > 0 AND l_extendedprice > 0
      AND l_discount BETWEEN 0 AND 0.10 AND l_tax BETWEEN 0 AND 0.08
      AND l_returnflag IN ('A', 'N', 'R') AND l_linestatus IN ('O', 'F')
      AND l_shipdate BETWEEN DATE '1992-01-01' AND DATE '1998-12-31'
      AND l_commitdate BETWEEN DATE '1992-01-01' AND DATE '1998-12-31'
      AND l_receiptdate BETWEEN DATE '1992-01-01' AND DATE '1998-12-31'
      AND l_shipinstruct IS NOT NULL AND l_shipmode IS NOT NULL AND l_comment IS NOT NULL
)
SELECT * EXCLUDE (filename, newest), date_trunc('month', l_shipdate)::DATE AS ship_month
FROM valid
WHERE newest = 1 AND l_orderkey IN (SELECT o_orderkey FROM {{ ref('stg_orders') }})
