"""The account's life by mail: verifying an address, resetting a forgotten password,
changing the address, deleting the account, and the pages their links open.

Every flow writes its mail into the outbox (mail/outbox.py) in the transaction of the
change, with a token from mail/tokens.py in its link (account/mails.py builds both).
"""
