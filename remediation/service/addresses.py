"""Every address of a case's account, as the directory has it now.

Exchange lists a blocked sender under the address it sent from: the primary address or any
SMTP alias, and an alias may be added after a case planned. Verification and episode
placement therefore read the account's addresses when they look, never only the ones a case
listed when it planned, and look each one up on the Restricted users list.
"""

from remediation.concurrently import all_of
from remediation.domain.blocks import BlockedSender
from remediation.domain.cases import Case
from remediation.domain.directory import DirectoryUser
from remediation.service.ports import Directory, RestrictedSenders


def account_addresses(case: Case, user: DirectoryUser | None) -> tuple[str, ...]:
    """The case's listed addresses first, then the account's primary address and every SMTP
    alias, lower case, each once (``user`` None: the case's own addresses only)."""
    names = [*case.block_addresses]
    if user is not None:
        names += [user.sender_address, *user.proxy_addresses]
    return tuple(dict.fromkeys(name.lower() for name in names if "@" in name))


async def current_addresses(directory: Directory, case: Case) -> tuple[str, ...]:
    """``account_addresses`` with the account read from the directory now. Raises
    TransientError when the directory cannot answer now, PermanentError when the account is
    gone."""
    user = await directory.find_user(case.user_id or case.user)
    return account_addresses(case, user)


async def entries_for(exchange: RestrictedSenders,
                      addresses: tuple[str, ...]) -> list[BlockedSender]:
    """The Restricted users list's entries for each of ``addresses`` (one read per address,
    side by side; the first failure is raised)."""
    answers = await all_of([exchange.blocked_entries(address) for address in addresses])
    return [entry for found in answers for entry in found]
