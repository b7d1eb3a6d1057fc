"""Job wiring per domain: each module has run(spark, ctx, config) named by conf/jobs/<job>.yml."""
