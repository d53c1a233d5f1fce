"""What every module stands on: storage, geography, accounts and permissions, audit, events and the web shell."""
