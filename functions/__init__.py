"""Code that ships to AWS Lambda. Imports nothing from infra/ or modelrail/."""
