"""Validates YAML config files against sluice's JSON Schema with the
jsonschema package (an implementation nobody here wrote).
Usage: schema_check.py SCHEMA.json FILE...  Prints "FILE: ok" or
"FILE: invalid at PATH: MESSAGE" per file; exits 1 if the schema itself is
not a valid draft-07 schema."""
import json
import sys

import jsonschema
import yaml

schema = json.load(open(sys.argv[1]))
try:
    jsonschema.Draft7Validator.check_schema(schema)
except jsonschema.exceptions.SchemaError as e:
    print("schema: not a valid draft-07 schema:", e.message)
    sys.exit(1)
validator = jsonschema.Draft7Validator(schema)
for path in sys.argv[2:]:
    with open(path) as f:
        doc = yaml.safe_load(f)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if not errors:
        print(f"{path}: ok")
        continue
    # The deepest error says which key is wrong (anyOf wraps the rest).
    best = jsonschema.exceptions.best_match(errors)
    where = "/".join(str(p) for p in best.absolute_path) or "(root)"
    print(f"{path}: invalid at {where}: {best.message}")
