-- Runs once, when the PostgreSQL volume is first created: one database for the
-- MLflow tracking server and registry (POSTGRES_DB, "mlflow"), one for Optuna.
CREATE DATABASE optuna;
