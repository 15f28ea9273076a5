"""`python -m scripts.import_redis`: one-off import of the previous version's durable data.

Before PostgreSQL, K2 accounts and API keys, Sabong users, wallets and the issuance audit
lived in Redis. This copies them from REDIS_URL into DATABASE_URL (migrated first), once,
when upgrading. It is idempotent: running it again imports nothing twice. Redis is only
read; delete the old keys yourself once the platform runs on the new version.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from services.sabong.legacy_import import import_from_redis as import_sabong
from services.ussd.legacy_import import import_from_redis as import_ussd
from shared.config import read_settings, with_embedded_stores
from shared.db import database_from_settings
from shared.exceptions import ConfigError, StoreUnavailable
from shared.redis import connect

from . import migrate


def main(argv: Sequence[str] | None = None) -> int:
    """Migrate, import both services' records, print what was imported as JSON."""
    if list(sys.argv[1:] if argv is None else argv):
        sys.exit("usage: python -m scripts.import_redis   (REDIS_URL -> DATABASE_URL)")
    # Unset URLs mean the stores `make run` uses: the previous version's `make run` kept
    # its data in the very Redis the new one starts.
    settings = with_embedded_stores(read_settings())
    database = database_from_settings(settings)
    try:
        migrate.upgrade(database.url)
        redis_client = connect(settings.redis_url or "")
        summary = {
            "ussd": import_ussd(redis_client, database),
            "sabong": import_sabong(redis_client, database),
        }
    except (ConfigError, StoreUnavailable) as exc:
        print(f"import_redis: {exc.message}; is the right REDIS_URL / DATABASE_URL set?",
              file=sys.stderr)  # fmt: skip
        return 1
    finally:
        database.close()
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
