"""compiler"""
from . import codegen

codegen.pin()
