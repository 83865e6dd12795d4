"""Real servers for the tests, started by session fixtures: moto (S3) and OpenSSH's sshd (SFTP)."""
