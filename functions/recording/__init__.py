"""What is recorded about each call: usage events and totals, the security audit, the funnel
and the sharded aggregates (contract section 5). Knows the document layouts (``stores.schema``),
not the policy that produced the call."""
