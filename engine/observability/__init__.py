"""What the engine shows of itself: the coordinator's snapshot (snapshot), the Prometheus and HTTP
endpoint (metrics), readiness and the heartbeat alert (health), the status screen (status), and
MM2's windowed statistics (windowed_stats)."""
