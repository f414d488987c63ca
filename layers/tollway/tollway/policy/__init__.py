"""A route's compiled edge policies, made once by the compiler and read by the steps: CORS
(cors.py), IP rules (ip.py), request validation (validation.py), metering terms (metering.py).
They import only the ground floor (tollway.core) and each other."""
