"""The bundled demo upstream: TPC-H generated, cut into daily drops with defects."""
