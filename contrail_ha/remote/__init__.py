"""Hosts reached over SSH, as real machines are: the cluster's key pair and known hosts, the SSH
client configuration and the Ansible inventory made from the topology (:mod:`.ssh`), and, for
tests and development, the topology's hosts stood up on this machine as network namespaces each
running its own sshd (:mod:`.machines`). Nothing on the deploy path enters a host's namespace:
it connects to the host's address.
"""
