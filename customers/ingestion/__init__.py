"""Customer data in from files, databases, HTTP APIs and event streams.

Every source turns what it reads into :class:`~customers.ingestion.readers.chunks.Chunk` objects (columns
keyed by contract field, a line or position per row, the raw row for quarantine). One pipeline
validates chunks with churn_ml.schema's column validator, flags anomalies, quarantines what it
refuses with every reason, upserts the rest with the database's bulk path and keeps the run's
counts, quality report and checkpoint in the same transaction as each chunk's writes.

    sniff.py     what a file is: binary or text, encoding, CSV / JSON / JSON Lines, delimiter
    mapping.py   which source column holds which contract field (contract, Telco or configured names)
    readers/     files streamed in chunks of bounded memory: chunks (Chunk, Reader), csv_file,
                 json_files, records (dict records to columns, also for databases and HTTP)
    pipeline.py  validate, de-duplicate, flag, write, quarantine, count, resume
    writers.py   PostgreSQL COPY + INSERT ... ON CONFLICT, or the portable ORM path
    anomalies.py robust z-scores against the stored customers
    sources/     database, HTTP and Redis stream readers
    services.py  the operations the API, admin, tasks and commands call
"""
