SELECT o.o_orderdate AS order_date,
       n.n_name AS nation,
       c.c_mktsegment AS market_segment,
       sum(l.l_extendedprice * (1 - l.l_discount)) AS revenue,
       count(DISTINCT o.o_orderkey) AS order_count,
       count(*) AS line_count
FROM {{ ref('stg_orders') }} o
JOIN {{ ref('stg_lineitem') }} l ON l.l_orderkey = o.o_orderkey
JOIN {{ ref('stg_customer') }} c ON c.c_custkey = o.o_custkey
JOIN {{ ref('stg_nation') }} n ON n.n_nationkey = c.c_nationkey
GROUP BY ALL
