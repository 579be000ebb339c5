SELECT o.o_custkey AS c_custkey,
       min(o.o_orderdate) AS first_order_date,
       max(o.o_orderdate) AS last_order_date,
       count(DISTINCT o.o_orderkey) AS order_count,
       coalesce(sum(l.l_extendedprice * (1 - l.l_discount)), 0)::DECIMAL(38, 4)
           AS lifetime_revenue
FROM {{ ref('stg_orders') }} o
LEFT JOIN {{ ref('stg_lineitem') }} l ON l.l_orderkey = o.o_orderkey
GROUP BY ALL
