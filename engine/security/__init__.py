"""Security of the engine's connections: Java client keys mapped onto librdkafka's (TLS stores,
SASL JAAS logins, OAuth), secrets from config providers and their redaction, and the ACLs the
engine needs on each cluster."""
