"""Deployment past one box: `glm51 deploy k8s` renders Kubernetes manifests from the recipe."""
