"""Who may do what, per code location: roles, the identities the gateway asserts, the access file.

* :mod:`.roles`: the four roles and exactly which of Dagster's ``Permissions`` each holds,
  and how each GraphQL mutation is checked;
* :mod:`.identity`: who a request is, as the auth service asserts it to the webserver
  (signed, so that only the gateway's word counts);
* :mod:`.rules`: the access file, which gives people, tokens and single-sign-on groups
  their role per team.
"""
